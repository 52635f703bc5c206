# plugins/db/sqlite: rules for this area (filled in by its owner)
