"""ReelFarm's ground floor: what more than one service needs, and the wiring that joins them.

Settings, the database (base, session, every table model, migrations), typed job options,
the state enums and rules, storage, media probing, output geometry, URL signing, timed
words, and the generated gRPC bindings (`reelfarm.v1`). None of it imports a service;
the two exceptions are the wiring modules, `reelfarm.cli` and `reelfarm.embedded`, which
start the services and so are the one place allowed to import all of them.
"""
