"""flightlog's data model: the ClickHouse DDL, its migrations, and the store they run on."""
