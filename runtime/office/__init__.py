"""The office module's services beside the record service: announcement read tracking,
the calendar's month and week grids, the address book and the workbench's to-do lists.

Business records (schedules, tasks, announcements …) are ordinary entities of the
`office` template; what lives here only reads them through the record service's list
queries (so data scopes apply) or keeps per-user state the entities don't hold.
"""
