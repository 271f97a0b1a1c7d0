"""The app: the HTTP edge, the use cases, the durable core and the upstream clients.

Glossary: each core word has one meaning here.

- **action**: what a command does, `unlink_ticket` or `remove_linked_incidents`
  (`Command.action`, `Outcome.action`, an operation's `action`).
- **command**: one validated upstream call to make (`incident_link_api.commands.Command`);
  a request becomes one or more (bulk).
- **item**: one target of a command and how it ended (`ItemResult`); a D3 command has an item
  per linked incident.
- **outcome**: the one answer shape for every action (`Outcome`).
- **route** (route kind): which family of routes a request came in on: `canonical`,
  `contraforce_mirror`, `d3_mirror`, `webhook` (`shared.routes`); it decides parsing and
  rendering, and it is recorded with the operation.
- **mode**: how a recorded operation's attempt ran: `sync` (in the request) or `queued`.
  The log field and metric dimension `caller` is `route` or `route:mode`.
- **principal**: the Entra caller App Service Authentication vouches for (`shared.principals`).
- **sender**: who an operation record says asked for it: a principal, or
  `contraforce-webhook` (stored as the record's `caller` property).
- **operation**: an accepted request, recorded (`shared.durable.operations.Operation`);
  **phase**: where it is (`shared.lifecycle.Phase`); **move**: a change of phase
  (`shared.lifecycle.Move`, checked against `TRANSITIONS`).
- **lease**: one runner's hold on an operation for one **attempt**; **LeaseHeld**: someone
  else holds it.
- **existing**: an idempotency key, or an operation, that was there before this request.
- **settle**: the one rule for "nothing to do" (`shared.actions.settle`).
- **storage**: the Azure Storage clients (`shared.storage.Storage`: queue, poison queue,
  table); **store**: the operations table as records (`shared.durable.store.RecordStore`).
- **upstreams**: the ContraForce and D3 clients (`shared.clients.registry.Upstreams`);
  **core**: what the use cases run on, handed in by the edge (`shared.core.Core`).
"""
