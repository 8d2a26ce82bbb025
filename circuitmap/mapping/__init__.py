"""Running a map: the run folder's layout and what it already holds, the units of work and
where they run (worker, executors), the driver that schedules them, and the whole run."""
