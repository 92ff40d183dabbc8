"""Dunning: policies (`rules/dunning.yaml`), business calendars, the pure planner, delivery of
planned contacts, and the collector actions used by the CLI, the pages and the API alike.

Import from the module that defines what you need, e.g.

    from cobro.dunning.policy import load_policies_file
    from cobro.dunning.schedule import plan, DunningCustomer, InvoiceState, Pause

See `cobro.dunning.schedule` for the planning rules (levels, stale steps, grouping, keys).
"""
