"""Board profiles: TOML files that name a charger board's driver backends and wiring."""
