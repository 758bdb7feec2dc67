"""The stages: one thin driver per ``harness <stage>`` subcommand (read files, call libraries, write atomically)."""
