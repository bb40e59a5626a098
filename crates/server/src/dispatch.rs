//! The dispatcher of docs/PROTOCOL.md §8: worker actions, slotgroups, offers, hand-off and polls.
//!
//! Plain data, no I/O: every operation returns the [`Offer`]s the caller must send as
//! `task_ready` (and the hand-off timers it must start). The session layer owns the sockets,
//! the timers and the backend calls; it keeps this structure behind a mutex and never holds
//! the lock across an `await`.

use foldhash::{HashMap, HashSet};
use jobcenter_backend::{JobId, PollRow, WorkerId};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// Identifies a connection (the rpc peer id).
pub type ConnId = u64;

/// Identifies one (connection, action) registration.
pub type WaId = u64;

/// A `task_ready` the caller must send.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The connection to notify.
    pub conn: ConnId,
    /// The action with work available.
    pub actionname: String,
    /// The job id for a specific-job offer (a JSON integer), or a poll-offer key (a string).
    pub job_id: Value,
    /// For specific-job offers: the hand-off timer to start (§8.4).
    pub handoff: Option<HandoffTimer>,
}

impl Offer {
    /// The `task_ready` params: `{"actionname":…,"job_id":…}`.
    pub fn params(&self) -> Value {
        json!({"actionname": self.actionname, "job_id": self.job_id})
    }
}

/// A hand-off timer: after the hand-off delay call [`Dispatcher::handoff`] with these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffTimer {
    /// The task key (the decimal job id).
    pub key: String,
    /// Identifies this particular offer; stale timers do nothing.
    pub token: u64,
}

/// Why a dispatcher operation was refused (the texts are the §7 -32001 reasons).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// `create_slotgroup` of an existing name.
    #[error("slotgroup {0} already exists")]
    SlotgroupExists(String),
    /// `withdraw` of an action not announced on this connection.
    #[error("actionname {0} not announced?")]
    NotAnnounced(String),
}

/// A task taken out of the table by `get_task` or `task_done`; hand it back to one of the
/// follow-up operations ([`Dispatcher::claimed`], [`Dispatcher::claim_nothing`], …).
#[derive(Debug, Clone, PartialEq)]
pub struct TakenTask {
    task: Task,
}

impl TakenTask {
    /// The backend job id to claim: `Some` for a specific-job offer, `None` for a poll offer.
    pub fn job_id(&self) -> Option<JobId> {
        self.task.job_id
    }

    /// The action the task was offered for.
    pub fn action(&self) -> &str {
        &self.task.action
    }

    /// The connection the task was offered to.
    pub fn conn(&self) -> ConnId {
        self.task.conn
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Task {
    action: String,
    job_id: Option<JobId>,
    wa: WaId,
    conn: ConnId,
    slotgroup: String,
    candidates: Option<Vec<WorkerId>>,
    token: u64,
    cookie: Option<String>,
    /// The pending-mark sequence number when the offer was made.
    seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct SlotGroup {
    slots: f64,
    used: u64,
    pending: Vec<WaId>,
}

impl SlotGroup {
    fn new(slots: f64) -> Self {
        SlotGroup {
            slots,
            used: 0,
            pending: Vec::new(),
        }
    }

    fn free(&self) -> bool {
        self.slots - self.used as f64 > 0.0
    }

    fn release(&mut self) {
        self.used = self.used.saturating_sub(1);
    }
}

#[derive(Debug, Clone, PartialEq)]
struct WorkerAction {
    conn: ConnId,
    action: String,
    slotgroup: String,
    filter: Option<Value>,
    /// Sequence number of the latest pending mark (see [`Dispatcher::claim_nothing`]).
    marked: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct WorkerConn {
    workername: Option<String>,
    worker_id: Option<WorkerId>,
    actions: BTreeMap<String, WaId>,
    slotgroups: BTreeMap<String, SlotGroup>,
}

/// All dispatch state of one server (§8.1).
#[derive(Debug, Default)]
pub struct Dispatcher {
    conns: HashMap<ConnId, WorkerConn>,
    was: HashMap<WaId, WorkerAction>,
    actions: HashMap<String, VecDeque<WaId>>,
    tasks: HashMap<String, Task>,
    /// Connections that do not read what they are sent (their output is backed up): they
    /// get no offers until their output drains.
    congested: HashSet<ConnId>,
    /// Worker connections that let an offer's hand-off timer expire: they get no offers
    /// until they show life again (a `get_task`, a ping answer; see [`Dispatcher::alive`]).
    stuck: HashSet<ConnId>,
    next_wa: u64,
    next_poll: u64,
    next_token: u64,
    mark_seq: u64,
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new() -> Self {
        Dispatcher::default()
    }

    /// Whether `name` is a slotgroup of this connection.
    pub fn slotgroup_exists(&self, conn: ConnId, name: &str) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.slotgroups.contains_key(name))
    }

    /// `create_slotgroup` after param validation (§7.10).
    pub fn create_slotgroup(
        &mut self,
        conn: ConnId,
        name: &str,
        slots: f64,
    ) -> Result<(), DispatchError> {
        let c = self.conns.entry(conn).or_default();
        if c.slotgroups.contains_key(name) {
            return Err(DispatchError::SlotgroupExists(name.to_string()));
        }
        c.slotgroups.insert(name.to_string(), SlotGroup::new(slots));
        Ok(())
    }

    /// The private slotgroup `_<action>` of an announce without `slotgroup`; replaces an
    /// earlier one (§7.11 step 1). Returns its name.
    pub fn set_private_slotgroup(&mut self, conn: ConnId, action: &str, slots: f64) -> String {
        let name = format!("_{action}");
        let c = self.conns.entry(conn).or_default();
        c.slotgroups.insert(name.clone(), SlotGroup::new(slots));
        name
    }

    /// The connection's current workername, if it announced successfully.
    pub fn workername(&self, conn: ConnId) -> Option<String> {
        self.conns.get(&conn).and_then(|c| c.workername.clone())
    }

    /// The connection's backend worker id, if it announced successfully.
    pub fn worker_id(&self, conn: ConnId) -> Option<WorkerId> {
        self.conns.get(&conn).and_then(|c| c.worker_id)
    }

    /// Whether the connection has at least one announced action.
    pub fn has_actions(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.actions.is_empty())
    }

    /// Record a successful backend announce (§7.11 step 3). Replaces an earlier
    /// registration of the same action on this connection.
    pub fn register(
        &mut self,
        conn: ConnId,
        workername: &str,
        worker_id: WorkerId,
        action: &str,
        slotgroup: &str,
        filter: Option<Value>,
    ) {
        let old = {
            let c = self.conns.entry(conn).or_default();
            c.workername = Some(workername.to_string());
            c.worker_id = Some(worker_id);
            c.actions.remove(action)
        };
        if let Some(old) = old {
            self.remove_wa(old);
        }
        self.next_wa += 1;
        let id = self.next_wa;
        self.was.insert(
            id,
            WorkerAction {
                conn,
                action: action.to_string(),
                slotgroup: slotgroup.to_string(),
                filter,
                marked: 0,
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.actions.insert(action.to_string(), id);
        }
        self.actions
            .entry(action.to_string())
            .or_default()
            .push_back(id);
    }

    /// `withdraw` (§7.12): forget the registration; returns the workername for the backend.
    pub fn withdraw(&mut self, conn: ConnId, action: &str) -> Result<String, DispatchError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or_else(|| DispatchError::NotAnnounced(action.to_string()))?;
        let id = c
            .actions
            .remove(action)
            .ok_or_else(|| DispatchError::NotAnnounced(action.to_string()))?;
        let workername = c.workername.clone().unwrap_or_default();
        self.remove_wa(id);
        Ok(workername)
    }

    fn remove_wa(&mut self, id: WaId) {
        let Some(wa) = self.was.remove(&id) else {
            return;
        };
        if let Some(list) = self.actions.get_mut(&wa.action) {
            list.retain(|x| *x != id);
            if list.is_empty() {
                self.actions.remove(&wa.action);
            }
        }
        if let Some(sg) = self
            .conns
            .get_mut(&wa.conn)
            .and_then(|c| c.slotgroups.get_mut(&wa.slotgroup))
        {
            sg.pending.retain(|x| *x != id);
        }
    }

    /// Disconnect processing (§8.9 steps 1.1–1.3 and 2): drops the connection's offers,
    /// claims, registrations and slotgroups. Returns the worker id (and name, for logs) to
    /// hand to the backend's `disconnect` when the connection ever became a worker.
    pub fn disconnect(&mut self, conn: ConnId) -> Option<(WorkerId, String)> {
        self.congested.remove(&conn);
        self.stuck.remove(&conn);
        let c = self.conns.remove(&conn)?;
        self.tasks.retain(|_, t| t.conn != conn);
        for id in c.actions.values() {
            if let Some(wa) = self.was.remove(id) {
                if let Some(list) = self.actions.get_mut(&wa.action) {
                    list.retain(|x| x != id);
                    if list.is_empty() {
                        self.actions.remove(&wa.action);
                    }
                }
            }
        }
        c.worker_id.zip(c.workername)
    }

    /// The worker ids of every connection that has one (for `poll_tasks`, §8.5 step 1).
    pub fn worker_ids(&self) -> Vec<WorkerId> {
        let mut ids: Vec<WorkerId> = self.conns.values().filter_map(|c| c.worker_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `find_free_slot` (§8.2): rotate, pick the first candidate with a free slot, reserve it.
    fn find_free_slot(
        &mut self,
        action: &str,
        candidates: Option<&[WorkerId]>,
        mark_pending: bool,
    ) -> Option<WaId> {
        let list = self.actions.get_mut(action)?;
        if list.is_empty() {
            return None;
        }
        if list.len() >= 2 {
            list.rotate_left(1);
        }
        let ids: Vec<WaId> = list.iter().copied().collect();
        let mut eligible = Vec::new();
        for id in ids {
            let Some(wa) = self.was.get(&id) else {
                continue;
            };
            if self.shunned(wa.conn) {
                continue;
            }
            let Some(c) = self.conns.get_mut(&wa.conn) else {
                continue;
            };
            if let Some(cands) = candidates {
                if !c.worker_id.is_some_and(|w| cands.contains(&w)) {
                    continue;
                }
            }
            let Some(sg) = c.slotgroups.get_mut(&wa.slotgroup) else {
                continue;
            };
            if sg.free() {
                sg.used += 1;
                return Some(id);
            }
            eligible.push(id);
        }
        if mark_pending {
            for id in eligible {
                self.mark_seq += 1;
                let seq = self.mark_seq;
                let Some(wa) = self.was.get_mut(&id) else {
                    continue;
                };
                wa.marked = seq;
                if let Some(sg) = self
                    .conns
                    .get_mut(&wa.conn)
                    .and_then(|c| c.slotgroups.get_mut(&wa.slotgroup))
                {
                    if !sg.pending.contains(&id) {
                        sg.pending.push(id);
                    }
                }
            }
        }
        None
    }

    fn release_plain(&mut self, conn: ConnId, slotgroup: &str) {
        if let Some(sg) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.slotgroups.get_mut(slotgroup))
        {
            sg.release();
        }
    }

    /// Releasing a slot with the pending round-robin (§8.6).
    fn release(&mut self, conn: ConnId, slotgroup: &str) -> Option<Offer> {
        loop {
            let sg = self
                .conns
                .get_mut(&conn)
                .and_then(|c| c.slotgroups.get_mut(slotgroup))?;
            if sg.pending.is_empty() {
                sg.release();
                return None;
            }
            if sg.pending.len() >= 2 {
                sg.pending.rotate_left(1);
            }
            let next = sg.pending[0];
            if self.was.contains_key(&next) {
                return self.poll_offer(next);
            }
            // defensive: a stale entry; drop it and look again
            sg.pending.retain(|x| *x != next);
        }
    }

    /// Create a poll offer (§8.5) for a WorkerAction whose slot is already reserved.
    fn poll_offer(&mut self, id: WaId) -> Option<Offer> {
        let wa = self.was.get(&id)?;
        self.next_poll += 1;
        let key = format!("please_{}_{}", wa.action, self.next_poll);
        let task = Task {
            action: wa.action.clone(),
            job_id: None,
            wa: id,
            conn: wa.conn,
            slotgroup: wa.slotgroup.clone(),
            candidates: None,
            token: 0,
            cookie: None,
            seq: self.mark_seq,
        };
        let offer = Offer {
            conn: wa.conn,
            actionname: wa.action.clone(),
            job_id: Value::String(key.clone()),
            handoff: None,
        };
        self.tasks.insert(key, task);
        Some(offer)
    }

    fn specific_offer(
        &mut self,
        id: WaId,
        action: &str,
        job_id: JobId,
        candidates: Option<Vec<WorkerId>>,
    ) -> Option<Offer> {
        let wa = self.was.get(&id)?.clone();
        self.next_token += 1;
        let token = self.next_token;
        let key = job_id.to_string();
        let task = Task {
            action: action.to_string(),
            job_id: Some(job_id),
            wa: id,
            conn: wa.conn,
            slotgroup: wa.slotgroup,
            candidates,
            token,
            cookie: None,
            seq: self.mark_seq,
        };
        if let Some(old) = self.tasks.insert(key.clone(), task) {
            // an older offer of the same job: give its slot back
            self.release_plain(old.conn, &old.slotgroup);
        }
        Some(Offer {
            conn: wa.conn,
            actionname: action.to_string(),
            job_id: Value::from(job_id),
            handoff: Some(HandoffTimer { key, token }),
        })
    }

    /// A ready notification for job `job_id` of `action` (§8.3).
    pub fn ready(
        &mut self,
        action: &str,
        job_id: JobId,
        candidates: Option<Vec<WorkerId>>,
    ) -> Option<Offer> {
        let id = self.find_free_slot(action, candidates.as_deref(), true)?;
        self.specific_offer(id, action, job_id, candidates)
    }

    /// The hand-off timer of an offer fired (§8.4, with the REF-BUG fixed: the task is
    /// stored again for the next worker).
    ///
    /// A worker that let an offer expire is taken to be stuck: it gets no further offers
    /// until it shows life ([`Dispatcher::alive`]), and its other unclaimed job offers go to
    /// other workers now instead of each waiting for its own timer.
    pub fn handoff(&mut self, key: &str, token: u64) -> Vec<Offer> {
        let conn = match self.tasks.get(key) {
            Some(t) if t.token == token && t.cookie.is_none() => t.conn,
            _ => return Vec::new(),
        };
        let mut offers: Vec<Offer> = self.hand_off(key, token).into_iter().collect();
        if self.stuck.insert(conn) {
            offers.extend(self.move_unclaimed(conn));
        }
        offers
    }

    /// Take an unclaimed job offer back and offer it to another worker.
    fn hand_off(&mut self, key: &str, token: u64) -> Option<Offer> {
        match self.tasks.get(key) {
            Some(t) if t.token == token && t.cookie.is_none() => {}
            _ => return None,
        }
        let task = self.tasks.remove(key)?;
        self.release_plain(task.conn, &task.slotgroup);
        let job_id = task.job_id?;
        // No free slot elsewhere: the busy workers are marked pending, so the job is offered
        // by poll as soon as one of them releases a slot (§8.6), not at the next poll.
        let id2 = self.find_free_slot(&task.action, task.candidates.as_deref(), true)?;
        if id2 == task.wa {
            self.release_plain(task.conn, &task.slotgroup);
            return None;
        }
        self.specific_offer(id2, &task.action, job_id, task.candidates)
    }

    /// Hand every unclaimed job offer of `conn` to other workers.
    fn move_unclaimed(&mut self, conn: ConnId) -> Vec<Offer> {
        let unclaimed: Vec<(String, u64)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.conn == conn && t.cookie.is_none() && t.job_id.is_some())
            .map(|(k, t)| (k.clone(), t.token))
            .collect();
        unclaimed
            .into_iter()
            .filter_map(|(key, token)| self.hand_off(&key, token))
            .collect()
    }

    /// Whether `conn` gets no offers now (congested or stuck).
    fn shunned(&self, conn: ConnId) -> bool {
        (!self.congested.is_empty() && self.congested.contains(&conn))
            || (!self.stuck.is_empty() && self.stuck.contains(&conn))
    }

    /// The worker on `conn` showed life (it asked for a task or answered a ping): offers go
    /// to it again. `true` when it was taken to be stuck (the caller then polls for it).
    pub fn alive(&mut self, conn: ConnId) -> bool {
        !self.stuck.is_empty() && self.stuck.remove(&conn)
    }

    /// A connection stopped (`true`) or resumed (`false`) reading what it is sent. A
    /// congested connection gets no offers, and the job offers it has not claimed yet go to
    /// other workers at once (returned), as if their hand-off timers had fired: one worker
    /// that does not read must not hold up the work of the others.
    pub fn congested(&mut self, conn: ConnId, congested: bool) -> Vec<Offer> {
        if !congested {
            self.congested.remove(&conn);
            return Vec::new();
        }
        if !self.congested.insert(conn) {
            return Vec::new();
        }
        self.move_unclaimed(conn)
    }

    /// The rows of a `poll_tasks` call (§8.5): poll offers, round-robin over the rows.
    pub fn poll(&mut self, rows: Vec<PollRow>) -> Vec<Offer> {
        let mut queue: VecDeque<PollRow> = rows.into();
        let mut offers = Vec::new();
        while let Some(mut row) = queue.pop_front() {
            if row.count == 0 || !self.actions.contains_key(&row.action) {
                continue;
            }
            let Some(id) = self.find_free_slot(&row.action, row.workers.as_deref(), true) else {
                continue;
            };
            offers.extend(self.poll_offer(id));
            row.count -= 1;
            if row.count > 0 {
                queue.push_back(row);
            }
        }
        offers
    }

    /// `get_task` step 1 (§8.7): take the offer stored under `key` (the text form of the
    /// `job_id` the worker sent). Claims (stored under cookies) are never taken here.
    pub fn take_offer(&mut self, key: &str) -> Option<TakenTask> {
        if self.tasks.get(key)?.cookie.is_some() {
            return None;
        }
        let mut task = self.tasks.remove(key)?;
        task.token = 0;
        Some(TakenTask { task })
    }

    /// `get_task` claimed a job: store the task under its cookie until `task_done` (§8.7
    /// step 7). Returns `false` (nothing stored) when the offered connection is gone.
    pub fn claimed(&mut self, mut taken: TakenTask, job_id: JobId, cookie: &str) -> bool {
        if !self.conns.contains_key(&taken.task.conn) {
            return false;
        }
        taken.task.job_id = Some(job_id);
        taken.task.cookie = Some(cookie.to_string());
        self.tasks.insert(cookie.to_string(), taken.task);
        true
    }

    /// `get_task` claimed nothing (§8.7 step 6): leave the pending list, release the slot.
    ///
    /// Deviation that closes a race of the reference algorithm: when a ready notification
    /// marked this WorkerAction pending while the claim was in flight (the new job became
    /// ready after the backend looked), it stays pending, so the slot passes to a new poll
    /// offer instead of the job waiting for the periodic poll.
    pub fn claim_nothing(&mut self, taken: TakenTask) -> Option<Offer> {
        let t = taken.task;
        let marked_since = self.was.get(&t.wa).is_some_and(|wa| wa.marked > t.seq);
        if marked_since {
            return self.release(t.conn, &t.slotgroup);
        }
        if let Some(sg) = self
            .conns
            .get_mut(&t.conn)
            .and_then(|c| c.slotgroups.get_mut(&t.slotgroup))
        {
            sg.pending.retain(|x| *x != t.wa);
        }
        self.release(t.conn, &t.slotgroup)
    }

    /// `get_task` failed in the backend (§8.7 step 5, REF-BUG fixed): release the slot.
    pub fn claim_failed(&mut self, taken: TakenTask) -> Option<Offer> {
        self.release(taken.task.conn, &taken.task.slotgroup)
    }

    /// `task_done` step 1 (§8.8): take the claim stored under `cookie`.
    pub fn take_claim(&mut self, cookie: &str) -> Option<TakenTask> {
        if self.tasks.get(cookie)?.cookie.as_deref() != Some(cookie) {
            return None;
        }
        let task = self.tasks.remove(cookie)?;
        Some(TakenTask { task })
    }

    /// A `task_done` arrived: release the slot or pass it on (§8.6), whether the backend
    /// then takes the result or not.
    ///
    /// Deviation from §8.8 step 3 (a failed backend call releases without the pending
    /// check): a poll that ran while this slot was taken (the one after the store
    /// recovered, say) marked the worker pending for the tasks it found; releasing without
    /// the check dropped that mark, and those tasks waited for the next periodic poll.
    pub fn done(&mut self, taken: TakenTask) -> Option<Offer> {
        self.release(taken.task.conn, &taken.task.slotgroup)
    }

    /// How many connections have at least one announced action.
    pub fn worker_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| !c.actions.is_empty())
            .count()
    }

    /// A JSON description of a connection's worker state (for `get_api_status clients`).
    pub fn describe_conn(&self, conn: ConnId) -> Value {
        let Some(c) = self.conns.get(&conn) else {
            return Value::Null;
        };
        let mut actions = Map::new();
        for (name, id) in &c.actions {
            if let Some(wa) = self.was.get(id) {
                actions.insert(
                    name.clone(),
                    json!({"filter": wa.filter, "slotgroup": wa.slotgroup}),
                );
            }
        }
        let mut groups = Map::new();
        for (name, sg) in &c.slotgroups {
            let pending: Vec<Value> = sg
                .pending
                .iter()
                .filter_map(|id| self.was.get(id).map(|wa| Value::from(wa.action.clone())))
                .collect();
            groups.insert(
                name.clone(),
                json!({"used": sg.used, "slots": sg.slots, "pending": pending}),
            );
        }
        json!({
            "workername": c.workername,
            "worker_id": c.worker_id,
            "workeractions": actions,
            "slotgroups": groups,
        })
    }

    /// A JSON description of the task table (for `get_api_status tasks`).
    pub fn describe_tasks(&self) -> Value {
        let mut out = Map::new();
        let mut keys: Vec<&String> = self.tasks.keys().collect();
        keys.sort();
        for k in keys {
            let t = &self.tasks[k];
            out.insert(
                k.clone(),
                json!({
                    "action": t.action,
                    "job_id": t.job_id,
                    "conn": t.conn,
                    "slotgroup": t.slotgroup,
                    "candidates": t.candidates,
                    "claimed": t.cookie.is_some(),
                }),
            );
        }
        Value::Object(out)
    }

    /// Number of reserved slots in a slotgroup (for tests and status).
    pub fn slots_used(&self, conn: ConnId, slotgroup: &str) -> Option<u64> {
        self.conns
            .get(&conn)
            .and_then(|c| c.slotgroups.get(slotgroup))
            .map(|sg| sg.used)
    }

    /// Slots of all slot groups, and how many of them are in use (for metrics).
    pub fn slot_totals(&self) -> (f64, u64) {
        self.conns
            .values()
            .flat_map(|c| c.slotgroups.values())
            .fold((0.0, 0), |(t, u), sg| (t + sg.slots, u + sg.used))
    }

    /// Number of entries in the task table (offers and claims).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One worker connection `conn` (worker id = conn) announcing `action` with `slots`.
    fn worker(d: &mut Dispatcher, conn: ConnId, action: &str, slots: f64) {
        let sg = d.set_private_slotgroup(conn, action, slots);
        d.register(conn, &format!("w{conn}"), conn as i64, action, &sg, None);
    }

    fn row(action: &str, workers: Option<Vec<WorkerId>>, count: usize) -> PollRow {
        PollRow {
            action: action.into(),
            workers,
            count,
        }
    }

    #[test]
    fn c56_one_slot_one_offer_then_next_after_done() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        let o1 = d.ready("add", 10, None).expect("offer");
        assert_eq!(o1.params(), json!({"actionname":"add","job_id":10}));
        assert_eq!(d.ready("add", 11, None), None, "slot busy");
        let t = d.take_offer("10").expect("offer stored");
        assert_eq!(t.job_id(), Some(10));
        assert!(d.claimed(t, 10, "cookie-1"));
        let done = d.take_claim("cookie-1").expect("claim");
        // the second job marked the action pending: the slot passes to a poll offer
        let next = d.done(done).expect("pending offer");
        assert_eq!(next.conn, 1);
        let id = next.job_id.as_str().expect("string id").to_string();
        assert!(id.starts_with("please_add_"));
        assert_eq!(d.slots_used(1, "_add"), Some(1));
        // claiming nothing leaves the pending list and frees the slot
        let t = d.take_offer(&id).expect("poll offer");
        assert_eq!(t.job_id(), None);
        assert_eq!(d.claim_nothing(t), None);
        assert_eq!(d.slots_used(1, "_add"), Some(0));
    }

    #[test]
    fn ready_during_an_empty_claim_is_not_lost() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        d.ready("add", 1, None).expect("offer");
        assert_eq!(d.ready("add", 2, None), None, "busy: pending");
        let t = d.take_offer("1").expect("offer");
        assert!(d.claimed(t, 1, "c1"));
        let t = d.take_claim("c1").expect("claim");
        let p = d.done(t).expect("poll offer for the pending action");
        let poll = d
            .take_offer(p.job_id.as_str().expect("poll id"))
            .expect("taken");
        // job 3 becomes ready while the poll claim is in flight (slot still reserved)
        assert_eq!(d.ready("add", 3, None), None);
        // the backend found nothing (it looked before job 3 was ready): job 3 must not wait
        let again = d.claim_nothing(poll).expect("new poll offer");
        assert!(again.job_id.is_string());
        assert_eq!(d.slots_used(1, "_add"), Some(1));
        // without a new mark, claiming nothing frees the slot
        let t = d
            .take_offer(again.job_id.as_str().expect("poll id"))
            .expect("taken");
        assert_eq!(d.claim_nothing(t), None);
        assert_eq!(d.slots_used(1, "_add"), Some(0));
    }

    #[test]
    fn c59_round_robin_between_idle_workers() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        worker(&mut d, 2, "add", 1.0);
        let mut conns = Vec::new();
        for job in 1..=4 {
            let o = d.ready("add", job, None).expect("offer");
            conns.push(o.conn);
            // claim and finish at once, so both are idle for the next job
            let t = d.take_offer(&job.to_string()).expect("task");
            assert!(d.claimed(t, job, &format!("c{job}")));
            let t = d.take_claim(&format!("c{job}")).expect("claim");
            assert_eq!(d.done(t), None);
        }
        assert_eq!(conns, vec![2, 1, 2, 1]);
    }

    #[test]
    fn c58_handoff_reregisters_for_the_next_worker() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        worker(&mut d, 2, "add", 1.0);
        let o = d.ready("add", 5, None).expect("offer");
        let first = o.conn;
        let timer = o.handoff.expect("timer");
        let o2 = d
            .handoff(&timer.key, timer.token)
            .pop()
            .expect("handed off");
        assert_ne!(o2.conn, first);
        assert_eq!(d.slots_used(first, "_add"), Some(0));
        assert_eq!(d.slots_used(o2.conn, "_add"), Some(1));
        // stale timer does nothing
        assert_eq!(d.handoff(&timer.key, timer.token), vec![]);
        // the second worker can claim it
        let t = d.take_offer("5").expect("re-registered");
        assert_eq!(t.conn(), o2.conn);
        // its timer is void once claimed
        let t2 = o2.handoff.expect("timer");
        assert!(d.claimed(t, 5, "ck"));
        assert_eq!(d.handoff(&t2.key, t2.token), vec![]);
    }

    #[test]
    fn handoff_to_the_same_worker_drops_the_task() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        let o = d.ready("add", 5, None).expect("offer");
        let timer = o.handoff.expect("timer");
        assert_eq!(d.handoff(&timer.key, timer.token), vec![]);
        assert_eq!(d.slots_used(1, "_add"), Some(0));
        assert_eq!(d.task_count(), 0);
    }

    #[test]
    fn a_congested_worker_gets_no_offers_and_its_unclaimed_offers_move_on() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1000.0);
        worker(&mut d, 2, "add", 1000.0);
        let mut to_1 = Vec::new();
        for job in 1..=10 {
            let o = d.ready("add", job, None).expect("offer");
            if o.conn == 1 {
                to_1.push(job);
            }
        }
        assert_eq!(to_1.len(), 5, "round robin between the two workers");
        // Worker 1 stops reading: its five unclaimed offers go to worker 2 at once.
        let moved = d.congested(1, true);
        let mut moved_jobs: Vec<i64> = moved
            .iter()
            .map(|o| {
                assert_eq!(o.conn, 2);
                o.job_id.as_i64().expect("job id")
            })
            .collect();
        moved_jobs.sort_unstable();
        assert_eq!(moved_jobs, to_1);
        assert_eq!(d.slots_used(1, "_add"), Some(0));
        // Asking again changes nothing; new work goes to worker 2 only.
        assert!(d.congested(1, true).is_empty());
        for job in 11..=20 {
            assert_eq!(d.ready("add", job, None).expect("offer").conn, 2);
        }
        // Reading again: worker 1 gets its share once more.
        assert!(d.congested(1, false).is_empty());
        let conns: Vec<ConnId> = (21..=24)
            .map(|job| d.ready("add", job, None).expect("offer").conn)
            .collect();
        assert!(conns.contains(&1) && conns.contains(&2));
    }

    #[test]
    fn a_worker_that_lets_an_offer_expire_gets_no_offers_until_it_shows_life() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1000.0);
        worker(&mut d, 2, "add", 1000.0);
        let mut to_1 = Vec::new();
        for job in 1..=6 {
            let o = d.ready("add", job, None).expect("offer");
            if o.conn == 1 {
                to_1.push(o);
            }
        }
        assert_eq!(to_1.len(), 3);
        // The first offer to worker 1 expires: it and the other two go to worker 2 now.
        let timer = to_1[0].handoff.clone().expect("timer");
        let moved = d.handoff(&timer.key, timer.token);
        assert_eq!(moved.len(), 3);
        assert!(moved.iter().all(|o| o.conn == 2));
        // Their own timers are void now.
        for o in &to_1[1..] {
            let t = o.handoff.clone().expect("timer");
            assert_eq!(d.handoff(&t.key, t.token), vec![]);
        }
        for job in 7..=10 {
            assert_eq!(d.ready("add", job, None).expect("offer").conn, 2);
        }
        assert!(d.alive(1));
        assert!(!d.alive(1));
        let conns: Vec<ConnId> = (11..=14)
            .map(|job| d.ready("add", job, None).expect("offer").conn)
            .collect();
        assert!(conns.contains(&1));
    }

    #[test]
    fn c60_candidates_filter_workers() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        worker(&mut d, 2, "add", 1.0);
        for job in 1..=3 {
            let o = d.ready("add", job, Some(vec![2])).expect("offer");
            assert_eq!(o.conn, 2);
            let t = d.take_offer(&job.to_string()).expect("task");
            assert_eq!(d.claim_nothing(t), None);
        }
        assert_eq!(d.ready("add", 9, Some(vec![77])), None);
    }

    #[test]
    fn a_failed_task_done_passes_the_slot_to_work_a_poll_found_meanwhile() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        d.ready("add", 10, None).expect("offer");
        let t = d.take_offer("10").expect("offer stored");
        assert!(d.claimed(t, 10, "cookie-1"));
        // The store fails and recovers; the poll after the recovery finds job 10 ready
        // again (its claim was rolled back) while the slot is still taken: pending.
        assert!(d.poll(vec![row("add", None, 1)]).is_empty(), "slot busy");
        // The task_done of the rolled-back claim arrives (and fails in the backend): the
        // slot goes to the poll.
        let failed = d.take_claim("cookie-1").expect("claim");
        let next = d.done(failed).expect("a poll offer for the pending action");
        assert_eq!(next.conn, 1);
        assert_eq!(d.slots_used(1, "_add"), Some(1));
    }

    #[test]
    fn c61_poll_offers_ids_and_counts() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 2.0);
        worker(&mut d, 2, "sub", 1.0);
        let offers = d.poll(vec![
            row("add", None, 5),
            row("sub", None, 1),
            row("nosuch", None, 3),
        ]);
        // add gets 2 (slots), sub gets 1
        let adds = offers.iter().filter(|o| o.actionname == "add").count();
        let subs = offers.iter().filter(|o| o.actionname == "sub").count();
        assert_eq!((adds, subs), (2, 1));
        for o in &offers {
            let s = o.job_id.as_str().expect("string id");
            assert!(!s.starts_with(|c: char| c.is_ascii_digit()));
            assert!(o.handoff.is_none());
        }
        let mut ids: Vec<&str> = offers.iter().filter_map(|o| o.job_id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3, "poll ids unique");
    }

    #[test]
    fn c62_unknown_or_used_offer_is_none() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        assert!(d.take_offer("42").is_none());
        d.ready("add", 42, None).expect("offer");
        let t = d.take_offer("42").expect("offer");
        assert!(d.claimed(t, 42, "cookie"));
        assert!(d.take_offer("42").is_none());
        // a cookie is not an offer key
        assert!(d.take_offer("cookie").is_none());
        assert!(d.take_claim("cookie").is_some());
        assert!(d.take_claim("cookie").is_none());
    }

    #[test]
    fn c67_pending_round_robin_in_a_slotgroup() {
        let mut d = Dispatcher::new();
        d.create_slotgroup(1, "g", 1.0).expect("new group");
        assert_eq!(
            d.create_slotgroup(1, "g", 1.0),
            Err(DispatchError::SlotgroupExists("g".into()))
        );
        d.register(1, "w", 1, "a", "g", None);
        d.register(1, "w", 1, "b", "g", None);
        d.ready("a", 1, None).expect("offer");
        assert_eq!(d.ready("a", 2, None), None);
        assert_eq!(d.ready("b", 3, None), None);
        let t = d.take_offer("1").expect("offer");
        assert!(d.claimed(t, 1, "c1"));
        let mut seen = Vec::new();
        let mut cookie = "c1".to_string();
        for n in 0..4 {
            let t = d.take_claim(&cookie).expect("claim");
            let o = d.done(t).expect("slot passed on");
            seen.push(o.actionname.clone());
            let t = d
                .take_offer(o.job_id.as_str().expect("poll id"))
                .expect("offer");
            cookie = format!("k{n}");
            assert!(d.claimed(t, 100 + n, &cookie));
        }
        assert_eq!(seen, vec!["b", "a", "b", "a"]);
        assert_eq!(d.slots_used(1, "g"), Some(1));
    }

    #[test]
    fn c71_disconnect_drops_offers_claims_and_registrations() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 2.0);
        worker(&mut d, 2, "add", 1.0);
        // make conn 1 get the offers: occupy conn 2
        let mut by_conn = HashMap::default();
        for job in 1..=3 {
            let o = d.ready("add", job, None).expect("offer");
            *by_conn.entry(o.conn).or_insert(0) += 1;
        }
        assert_eq!(by_conn.get(&1), Some(&2));
        let t = d.take_offer("1").or_else(|| d.take_offer("2")).expect("t");
        let c = t.conn();
        assert!(d.claimed(t, 1, "ck"));
        assert_eq!(d.disconnect(c).map(|(_, name)| name), Some(format!("w{c}")));
        assert_eq!(d.disconnect(c), None);
        assert!(d.take_claim("ck").is_none());
        assert_eq!(d.worker_ids().len(), 1);
        assert_eq!(d.worker_count(), 1);
        // a conn that never announced is not a worker
        d.create_slotgroup(9, "g", 1.0).expect("group");
        assert_eq!(d.disconnect(9), None);
    }

    #[test]
    fn c69_withdraw() {
        let mut d = Dispatcher::new();
        worker(&mut d, 1, "add", 1.0);
        assert!(d.has_actions(1));
        assert_eq!(d.withdraw(1, "add"), Ok("w1".into()));
        assert!(!d.has_actions(1));
        assert_eq!(
            d.withdraw(1, "add"),
            Err(DispatchError::NotAnnounced("add".into()))
        );
        assert_eq!(d.ready("add", 1, None), None);
    }
}
