"""metacrm.designer — the admin's browser designer.

`drafts` stages the instance layer and publishes it; `api` is its JSON face under
`/api/v1/designer`; `web` mounts the pages (`pages_*`: entities, forms, publish,
history, templates) under `/designer`. Imports runtime and metadata, never the shell.
"""
