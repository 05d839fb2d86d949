"""Background work as durable jobs: a row in the database, run by a worker process separate from Daphne.

The queue is django-tasks' database backend (django-tasks-db: Django's own tasks API, whose database backend is
the reference implementation; Django 6 ships the API as `django.tasks`). Each job is a `DBTaskResult` row: it is
written in the same transaction as the change that asks for it, so a job exists exactly when that change
committed. `manage.py run_worker` (bin/run starts it; systemd runs `chat-worker@N`) claims rows one at a time.
This package adds what that library leaves open (its issue #5, "unclean exits leave tasks in limbo", and retries):

- `worker`: every worker writes a heartbeat (`WorkerHeartbeat`) each second from its own thread;
- `recovery`: a job whose worker died (process gone, or silent for JOBS_LEASE_SECONDS) is queued again, and
  after JOBS_MAX_ATTEMPTS it fails with its kind's `give_up`, so nothing it was doing stays `Processing`;
  a job that raised is retried after JOBS_RETRY_DELAY_SECONDS, doubling;
- `kinds`: the `job` decorator, the registry of kinds, `enqueue`.

Adding a kind (say re-embedding an assistant's chunks) is one function in its own module here:

    from .kinds import job

    def _give_up(kwargs: dict, reason: str) -> None:
        ...  # leave what the job was doing in a final, visible state (e.g. mark the assistant's index failed)

    @job("reembed", give_up=_give_up)
    def reembed_assistant(*, assistant_id: int, model: str) -> str:
        ...  # idempotent: a job may run again after its worker died part-way

    # and where the change is written, inside its transaction:
    kinds.enqueue(reembed_assistant, assistant_id=assistant.pk, model=model)

Jobs run at least once: a kind must be idempotent (ingestion swaps a file's chunks in one transaction, so a second
run leaves the same chunks). Keyword arguments only, JSON values. Add the module to `kinds.KIND_MODULES`, so
that a worker knows the kind (its attempts and `give_up`) before it has run one. With JOBS_MODE=immediate (unit
tests) a job runs in the caller after commit.
"""
