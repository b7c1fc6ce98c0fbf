"""The CLI's subcommands, one module each; ``appliance.cli`` wires them to argparse."""
