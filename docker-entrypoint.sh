#!/bin/sh
# Runs the migrations first when ORCHESTRATOR_MIGRATE_ON_START=true, then the command.
set -e
case "${ORCHESTRATOR_MIGRATE_ON_START:-false}" in
    1|true|yes|on) orchestrator migrate ;;
esac
exec "$@"
