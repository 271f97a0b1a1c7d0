"""At least once in, at most once in effect: the durable core, one module per job.

- `operations`: an operation as stored (`Operation`), reading it, and `accept` (record it once
  per idempotency key, with a row per command).
- `attempt`: one run of an operation: lease it, keep the lease alive, mark each command SENT
  before its request leaves and ANSWERED once its answer is stored, then record it (final or
  poisoned) or requeue it. `Steps` lets a test stop a run at any step, as a crash would.
- `work`: the queue message (`QueuedWork`) and sending it.
- `worker`: the queue worker's whole job (`process_message`) and `replay_poison`.
- `entities` (the Azure Table entity codec and size rules) and `store` (`RecordStore`).

The moves are those of `shared.lifecycle`'s transition table; these modules make them durable.
Nothing here is imported when the app is indexed: a direct call never needs the storage path.
"""
