#!/usr/bin/env bash
# Go modules for the build and the tests.
set -euo pipefail
go mod download
