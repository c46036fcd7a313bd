"""The workflow and approval engine: `kind: workflow` metadata as state machines.

`machine` compiles the metadata, `guard` is what the record service calls (state fields
and locked states), `engine` fires transitions (`fire_transition`), `approvals` runs
approval chains, `approvers` finds the people, `reading` answers the trail, the inbox
and previews, `delegation` keeps approvers' stand-ins.
"""
