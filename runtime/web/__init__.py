"""metacrm.runtime.web — the runtime's web face: REST API and OpenAPI (Flask blueprints)."""
