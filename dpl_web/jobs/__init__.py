"""Jobs: what DPL does to containers and apps, run in the background by a worker.

A service (dpl_web.services) queues a job in the registry and returns at once; the worker
(:mod:`.worker`) runs it (:mod:`.kinds` says what each kind does, :mod:`.run` runs its
playbooks through ansible-runner and stores its events); anyone follows it from its
stored events (:mod:`.follow`) and may cancel it through the registry.
"""
