"""Schema: the API's request models and the service registry (hosts, versions, actions, caps).

The bottom layer: it imports nothing of batcher. Every other layer, the emulator included, takes
its names and shapes from here, so the client and the stand-in agree on the contract
(docs/architecture.md#the-two-services). Modules: `services` (the registry), `models` (pydantic
models of `CreateAigcImageTaskRequest`),
`results` (the poll actions' requests and answers, docs/results.md), `schema` (the request models'
rules as a table, generated into `schema_table` by `schema_gen`: the manifest validates a common
request without importing pydantic, and asks the models only about the rest).
"""
