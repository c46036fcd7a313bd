"""metacrm.seeds — shipped metadata (template packages), read with importlib.resources."""
