//! Events (docs/JCL.md §2.13): subscribe, unsubscribe, raise_event, wait_for_event.

use jobcenter_store::{JobRecord, JobState, Millis, QueuedEvent, Subscription, Txn};
use serde_json::{json, Map, Value};

use super::json::{contains, error_value};
use super::sched::{secs_to_millis, Flow, Run};
use crate::compile::graph::{Task, TaskId, TaskKind, Workflow};
use crate::eval::{self, caught_exception, EnvIds, IoSpec, Phase};
use crate::syntax::ast::Map as AstMap;

fn raise_msg(msg: String) -> Flow {
    Flow::Raise(error_value(msg, "normal"))
}

fn spec(name: &str, ty: &str, default: Option<Value>) -> Vec<IoSpec> {
    match IoSpec::base(name, ty) {
        Some(s) => vec![match default {
            Some(d) => s.with_default(d),
            None => s,
        }],
        None => Vec::new(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmm+00:00` for a time in milliseconds since the epoch.
pub(crate) fn iso_timestamp(ms: Millis) -> String {
    jobcenter_backend::time::iso_millis(ms)
}

impl Run<'_> {
    /// Run an input map of an event statement and check it against `spec`.
    fn event_inputs(
        &self,
        job: &JobRecord,
        wf: &Workflow,
        task: &Task,
        inputs: &AstMap,
        spec: &[IoSpec],
    ) -> Result<Map<String, Value>, Flow> {
        let ids = EnvIds {
            workflow_id: wf.id as i64,
            job_id: job.id,
            task_id: task.id as i64,
        };
        let i = eval::run_input_map(inputs, &job.args, &job.env, &job.vars, Some(ids)).map_err(
            |e| {
                raise_msg(caught_exception(
                    Phase::InArgsMap,
                    e.sqlstate(),
                    &e.message(),
                ))
            },
        )?;
        eval::check_inputs_owned(spec, i)
            .map_err(|e| raise_msg(caught_exception(Phase::InArgsMap, "P0001", &e.to_string())))
    }

    /// `subscribe:` (`name string`, `mask object`); duplicates are ignored.
    pub(crate) fn subscribe_task(
        &mut self,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        inputs: &AstMap,
    ) -> Flow {
        let mut sp = spec("name", "string", None);
        sp.extend(spec("mask", "object", None));
        let mut i = match self.event_inputs(job, wf, task, inputs, &sp) {
            Ok(i) => i,
            Err(f) => return f,
        };
        let name = match i.remove("name") {
            Some(Value::String(s)) => s,
            Some(other) => eval::to_perl_string(&other).unwrap_or_default(),
            None => String::new(),
        };
        let mask = i.remove("mask").unwrap_or(Value::Null);
        let dup = job
            .subscriptions
            .iter()
            .any(|s| s.name == name || s.mask == mask);
        if !dup {
            job.subscriptions.push(Subscription {
                name,
                mask,
                queue: Vec::new(),
            });
        }
        Flow::Goto(task.next)
    }

    /// `unsubscribe:` (`name string`): drop the subscription and its queued events.
    pub(crate) fn unsubscribe_task(
        &mut self,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        inputs: &AstMap,
    ) -> Flow {
        let mut i = match self.event_inputs(job, wf, task, inputs, &spec("name", "string", None)) {
            Ok(i) => i,
            Err(f) => return f,
        };
        let name = i.remove("name").unwrap_or(Value::Null);
        job.subscriptions
            .retain(|s| Some(s.name.as_str()) != name.as_str());
        Flow::Goto(task.next)
    }

    /// `raise_event:` (`event object`).
    pub(crate) fn raise_event_task(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        inputs: &AstMap,
    ) -> Flow {
        let mut i = match self.event_inputs(job, wf, task, inputs, &spec("event", "object", None)) {
            Ok(i) => i,
            Err(f) => return f,
        };
        let event = i.remove("event").unwrap_or(Value::Null);
        self.raise_event(txn, event, Some(job));
        Flow::Goto(task.next)
    }

    /// Publish an event: wake waiting subscribers, queue it for the others. `current` is the
    /// job being executed (its record in the store is stale while it runs).
    pub(crate) fn raise_event(
        &mut self,
        txn: &mut dyn Txn,
        event: Value,
        mut current: Option<&mut JobRecord>,
    ) {
        let event_id = txn.next_event_id();
        let when = iso_timestamp(self.now);
        let queued = QueuedEvent {
            event_id,
            when,
            data: event,
        };
        if let Some(job) = current.as_deref_mut() {
            for s in job.subscriptions.iter_mut() {
                if contains(&queued.data, &s.mask) {
                    s.queue.push(queued.clone());
                }
            }
        }
        let current_id = current.map(|j| j.id);
        for id in txn.subscribed_jobs() {
            if Some(id) == current_id {
                continue;
            }
            let Some(mut job) = txn.job(id) else {
                continue;
            };
            let mut woken = None;
            let mut changed = false;
            let waiting: Vec<String> = if job.state == JobState::EventWait {
                waiting_names(&job)
            } else {
                Vec::new()
            };
            for s in job.subscriptions.iter_mut() {
                if !contains(&queued.data, &s.mask) {
                    continue;
                }
                changed = true;
                if woken.is_none() && waiting.contains(&s.name) {
                    woken = Some(event_object(&s.name, &queued));
                } else {
                    s.queue.push(queued.clone());
                }
            }
            match woken {
                Some(o) => {
                    job.state = JobState::Plotting;
                    job.wake_at = None;
                    // Out of `eventwait` at once, so nothing else wakes it in this run.
                    txn.put_job(job.clone());
                    let flow = self.event_outputs(&mut job, o);
                    self.push(job, flow);
                }
                None if changed => txn.put_job(job),
                None => {}
            }
        }
    }

    /// `wait_for_event:` (`events array []`, `timeout number 11.11`).
    pub(crate) fn wait_for_event_task(
        &mut self,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        inputs: &AstMap,
    ) -> Flow {
        let mut sp = spec("events", "array", Some(json!([])));
        sp.extend(spec("timeout", "number", Some(json!(11.11))));
        let i = match self.event_inputs(job, wf, task, inputs, &sp) {
            Ok(i) => i,
            Err(f) => return f,
        };
        let names: Vec<String> = match i.get("events") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => eval::to_perl_string(other).unwrap_or_default(),
                })
                .collect(),
            _ => Vec::new(),
        };
        // The oldest queued event of any named subscription.
        let oldest = job
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| names.contains(&s.name))
            .filter_map(|(i, s)| s.queue.first().map(|e| (e.event_id, i)))
            .min();
        if let Some((_, idx)) = oldest {
            let s = &mut job.subscriptions[idx];
            let ev = s.queue.remove(0);
            let o = event_object(&s.name, &ev);
            return self.event_outputs(job, o);
        }
        let timeout = i.get("timeout").and_then(Value::as_f64);
        job.state = JobState::EventWait;
        job.wake_at = timeout.map(|t| self.now + secs_to_millis(t));
        job.task_state.inargs = Some(std::sync::Arc::new(json!({ "events": names })));
        Flow::Wait
    }

    /// The `wait_for_event` deadline passed: `o.event` is the timeout object.
    pub(crate) fn event_timeout(&mut self, mut job: JobRecord) {
        job.state = JobState::Plotting;
        let o = json!({
            "name": "timeout",
            "event_id": null,
            "when": iso_timestamp(self.now),
            "data": null,
        });
        let flow = self.event_outputs(&mut job, o);
        self.push(job, flow);
    }

    /// Run the `wait_for_event`'s output map with `o.event` and continue.
    fn event_outputs(&mut self, job: &mut JobRecord, event: Value) -> Flow {
        let map = self
            .defs
            .workflow(job.workflow_def)
            .and_then(|wf| wf.task(job.task as TaskId).cloned())
            .and_then(|t| match t.kind {
                TaskKind::WaitForEvent { outputs, .. } => outputs,
                _ => None,
            });
        let mut o = Map::new();
        o.insert("event".into(), event);
        self.apply_outputs(job, None, map.as_ref(), Value::Object(o))
    }
}

/// The subscription names a job in `eventwait` waits on.
fn waiting_names(job: &JobRecord) -> Vec<String> {
    job.task_state
        .inargs
        .as_ref()
        .and_then(|i| i.get("events"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn event_object(name: &str, ev: &QueuedEvent) -> Value {
    json!({
        "name": name,
        "event_id": ev.event_id,
        "when": ev.when,
        "data": ev.data,
    })
}
