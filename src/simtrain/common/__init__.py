"""Helpers every stage uses: atomic file writes (`files`), a job's log set-up (`logs`), and
named failpoints that fault-injection tests use to kill a job at a chosen line (`failpoints`)."""
