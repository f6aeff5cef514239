"""Pure save-decision and preservation policies, the retention planner and the simulator."""
