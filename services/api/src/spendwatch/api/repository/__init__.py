"""The SQL the API runs, one module per area; every query is parameterised."""
