"""metacrm.designer — the admin's browser designer (drafts, preview, publish). Built in its own issue."""
