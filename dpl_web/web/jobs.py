"""Jobs: the history with filters and pages, and a job's page, whose log and progress come
live from the job's stored events (server-sent events, resumed at Last-Event-ID)."""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)

from dpl_web import services
from dpl_web.collection import releases
from dpl_web.errors import BadRequest
from dpl_web.jobs import follow
from dpl_web.registry import JOB_FINISHED, JOB_STATUSES
from dpl_web.web import auth, ctx

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

PAGE = 50
STREAM_SECONDS = 3600  # a stream ends after this; the browser reconnects where it was
FILTERS = ("target", "kind", "status")
DEPLOY_STEPS = releases.DEPLOY_STEPS  # in order, as the deploy's progress and failure name them


@bp.get("/")
def index():
    filters = {key: request.args[key] for key in FILTERS if request.args.get(key)}
    before = request.args.get("before") or None
    jobs = services.list_jobs(ctx(), **filters, before=before, limit=PAGE + 1)
    older = jobs[PAGE]["id"] + 1 if len(jobs) > PAGE else None
    return render_template("jobs.html", jobs=jobs[:PAGE], filters=filters, statuses=JOB_STATUSES, older=older,
                           first=before is None)


@bp.get("/<int:job_id>")
def show(job_id: int):
    context = ctx()
    job = services.get_job(context, job_id)
    events = services.job_events(context, job_id)
    return render_template("job.html", job=job, last_seq=events[-1]["seq"] if events else 0,
                           failure=_failure(events), steps=_steps(job, events), done=job["status"] in JOB_FINISHED)


@bp.get("/<int:job_id>/events")
def events(job_id: int):
    """The job's events as server-sent events (the page's live log)."""
    context = ctx()
    services.get_job(context, job_id)  # 404 before the stream starts
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    if not re.fullmatch(r"[0-9]{1,18}", after):
        raise BadRequest("Last-Event-ID must be a sequence number")
    sid = session.get("sid")
    idle = current_app.config.get("SESSION_IDLE_SECONDS", auth.IDLE_SECONDS)
    max_age = current_app.config.get("SESSION_MAX_SECONDS", auth.MAX_SECONDS)

    def still_allowed(reg):  # the session may end while the log is open: then the stream ends
        return reg.check_session(sid, idle, max_age) is not None

    stream = stream_with_context(follow.server_sent_events(context.registry_path, job_id, int(after),
                                                           still_allowed, STREAM_SECONDS))
    return Response(stream, mimetype="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                   "X-Accel-Buffering": "no"})


@bp.post("/<int:job_id>/cancel")
def cancel(job_id: int):
    job = services.cancel_job(ctx(), job_id).record
    flash(f"job {job_id}: " + ("canceled" if job["status"] == "canceled" else "asked to stop"), "info")
    return redirect(url_for("jobs.show", job_id=job_id))


def _failure(events: list[dict]) -> dict | None:
    """The failed step's report: its task, message and last lines of output."""
    for event in reversed(events):
        if event["type"] == "result" and event.get("status") in ("failed", "unreachable"):
            lines = str(event.get("msg") or "").splitlines()
            return {"task": event.get("task"), "step": event.get("failed_step"), "lines": lines[-30:]}
    return None


def _steps(job: dict, events: list[dict]) -> list[tuple[str, str]] | None:
    """A deploy's steps and where each stands (done, running, failed, to do), from what the
    job reported; None for other jobs."""
    if job["kind"] != "deploy":
        return None
    if job["status"] == "successful":
        return [(step, "done") for step in DEPLOY_STEPS]
    failed = next((event.get("failed_step") for event in reversed(events) if event.get("failed_step")), None)
    reached = [event["step"] for event in events if event["type"] == "step" and event.get("step") in DEPLOY_STEPS]
    if failed in DEPLOY_STEPS:
        at, state = DEPLOY_STEPS.index(failed), "failed"
    elif reached:
        at, state = DEPLOY_STEPS.index(reached[-1]), "running" if job["status"] == "running" else "failed"
    else:
        at, state = 0, "running" if job["status"] == "running" else "to do"
    return [(step, "done" if index < at else state if index == at else "to do")
            for index, step in enumerate(DEPLOY_STEPS)]
