//! A task that calls something: an action (a task for a worker, `ActionReady`) or a
//! workflow (a child job, blocking or not) (docs/JCL.md §2.6, §2.7).

use std::sync::Arc;

use jobcenter_store::{ChildLink, JobId, JobRecord, JobState, ParentLink, Txn};
use serde_json::{json, Map, Value};
use tracing::debug;

use super::json::{error_value, object_contains};
use super::sched::{ids, max_depth_of, raise_msg, Flow, Run};
use crate::backend::Event;
use crate::compile::graph::{Action, CallMode, CallTask, Task, Workflow};
use crate::eval::{self};
use crate::syntax::ast::Obj;

impl Run<'_> {
    pub(super) fn call_action(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        ct: &CallTask,
    ) -> Flow {
        let (Some(action), Some(specs)) = (
            self.defs.catalog.action(ct.target.def),
            self.defs.specs(ct.target.def),
        ) else {
            return raise_msg(format!("no action named {}.", ct.target.name));
        };
        let inargs = match self.inputs(job, &job.env, wf, task, ct, &specs.inputs) {
            Ok(i) => i,
            Err(flow) => return flow,
        };
        let env = if action.env.is_empty() {
            Map::new()
        } else {
            let ids = ids(job, wf, task.id);
            let mut obj = Map::new();
            for spec in &action.env {
                let v = match spec.name.as_str() {
                    "workflow_id" => Some(json!(ids.workflow_id)),
                    "job_id" => Some(json!(ids.job_id)),
                    "task_id" => Some(json!(ids.task_id)),
                    k => job.env.get(k).cloned(),
                };
                if let Some(v) = v {
                    obj.insert(spec.name.clone(), v);
                }
            }
            let checked = match &specs.env {
                Ok(spec) => eval::check_inputs_owned(spec, obj).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(env) => env,
                Err(msg) => return raise_msg(format!("action environment error: {msg}")),
            }
        };
        let inargs = Value::Object(inargs);
        self.notify_ready(txn, job.id, action, &inargs);
        job.state = JobState::Ready;
        job.task_state.action = Some(action.name.clone());
        job.task_state.inargs = Some(Arc::new(inargs));
        job.task_state.env = Some(Arc::new(env));
        Flow::Wait
    }

    /// Emit `ActionReady` for a job whose task of `action` became ready (§10.11).
    pub fn notify_ready(&mut self, txn: &dyn Txn, job_id: JobId, action: &Action, inargs: &Value) {
        let workers = if action.filter.is_some() {
            let empty = Map::new();
            let inargs_obj = inargs.as_object().unwrap_or(&empty);
            let mut ids: Vec<i64> = txn
                .active_workers()
                .into_iter()
                .filter(|w| {
                    w.registrations.iter().any(|r| {
                        r.action == action.name
                            && r.filter.as_ref().is_none_or(|f| {
                                object_contains(inargs_obj, &Value::Object(f.clone()))
                            })
                    })
                })
                .map(|w| w.id)
                .collect();
            if ids.is_empty() {
                return;
            }
            ids.sort_unstable();
            Some(ids)
        } else {
            None
        };
        self.events.push(Event::ActionReady {
            action: action.name.clone(),
            job_id,
            workers,
        });
    }

    pub(super) fn call_workflow(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        ct: &CallTask,
    ) -> Flow {
        let (Some(child_wf), Some(specs)) = (
            self.defs.catalog.workflow(ct.target.def),
            self.defs.specs(ct.target.def),
        ) else {
            return raise_msg(format!("no workflow named {}", ct.target.name));
        };
        let d = job.depth;
        let max = max_depth_of(&job.env);
        if d >= max {
            return Flow::Raise(error_value(
                format!("maximum call depth would be exceeded: {d} >= {max}"),
                "fatal",
            ));
        }
        // One child per element for `map W using X`, else exactly one.
        let args_list = match &ct.map_over {
            None => match self.inputs(job, &job.env, wf, task, ct, &specs.inputs) {
                Ok(i) => vec![i],
                Err(flow) => return flow,
            },
            Some(var) => {
                let name = var.path.first().map(|p| p.name.as_str()).unwrap_or("");
                let label = format!("{}.{}", var.obj.letter(), name);
                let src = if var.obj == Obj::A {
                    &job.args
                } else {
                    &job.vars
                };
                let items = match src.get(name) {
                    None => return raise_msg(format!("map variable {label} does not exist?")),
                    Some(Value::Array(items)) => items.clone(),
                    Some(_) => return raise_msg(format!("map variable {label} is not an array")),
                };
                let mut list = Vec::with_capacity(items.len());
                for (idx, item) in items.into_iter().enumerate() {
                    let mut env = (*job.env).clone();
                    env.insert("_i".into(), json!(idx + 1));
                    env.insert("_v".into(), item);
                    match self.inputs(job, &env, wf, task, ct, &specs.inputs) {
                        Ok(i) => list.push(i),
                        Err(flow) => return flow,
                    }
                }
                list
            }
        };
        let mut env = (*job.env).clone();
        for (k, v) in &child_wf.wfenv {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.cfg.global_env {
            env.insert(k.clone(), v.clone());
        }
        env.insert("max_depth".into(), json!(max));
        let parent = match ct.mode {
            CallMode::Detached => None,
            mode => Some(ParentLink {
                job_id: job.id,
                task: task.id as u64,
                wait: mode == CallMode::Blocking,
            }),
        };
        let mut last = None;
        for args in args_list {
            let child_id = txn.next_job_id();
            let child = self.new_job(child_id, child_wf, args, env.clone(), d + 1, parent.clone());
            debug!(job = job.id, child = child_id, workflow = %child_wf.name, "child job created");
            // Visible at once (a `wait_for_children` later in this transaction must see it).
            txn.put_job(child.clone());
            self.push(child, Self::start_flow(child_wf));
            if ct.mode == CallMode::NonBlocking {
                job.children.push(ChildLink {
                    job_id: child_id,
                    task: task.id as u64,
                });
            }
            last = Some(child_id);
        }
        match ct.mode {
            CallMode::Blocking => {
                job.state = JobState::ChildWait;
                job.task_state.child = last;
                Flow::Wait
            }
            CallMode::NonBlocking | CallMode::Detached => Flow::Goto(task.next),
        }
    }
}
