"""The bundled demo app (ticket triage) and the script that runs it: ``tether demo``."""
