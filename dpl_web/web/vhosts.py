"""Adopting an operator's hand-written nginx server blocks (dpl_web.vhost_import): the page
shows what the file holds and where each block would go; confirmed, the import runs (its
vhost job is followed to its end, a few seconds) and the dashboard says what it did. Only
files in nginx's own folder are read here."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from dpl_web import services
from dpl_web.web import ctx

bp = Blueprint("vhosts", __name__, url_prefix="/vhosts")


@bp.route("/import", methods=["GET", "POST"])
def import_():
    file = (request.values.get("file") or "").strip() or None
    if request.method == "GET" or "confirmed" not in request.form:
        plan = services.import_vhosts(ctx(), file=file, dry_run=True, confined=True)
        return render_template("vhost_import.html", plan=plan, file=file or "")
    done = services.import_vhosts(ctx(), file=file, confined=True)
    if not done["adopt"]:
        flash(f"{done['file']}: nothing to import", "info")
    for app, domains in done["adopt"].items():
        flash(f"{app} now serves {', '.join(domains)} through DPL's vhosts", "info")
    if done["backup"]:
        flash(f"the adopted blocks left {done['file']}; its copy from before is {done['backup']}", "info")
    return redirect(url_for("dashboard.index"))
