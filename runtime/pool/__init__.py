"""The public pool (公海): unowned records in named pools, and the actions and the job
that move records between owners and pools.

- `config.py`: a `kind: pool` document as the runtime reads it (members, admins, limits,
  linked records, recycling rules);
- `moves.py`: carrying out a change of hands (history, move log, linked records, sharing);
- `actions.py`: the entity actions claim, assign, release, transfer, lock, unlock;
- `recycle.py`: the `metacrm jobs run` job applying the recycling rules, with reminders.

Kept free of imports so `runtime/access.py` can read pool membership without a cycle.
"""
