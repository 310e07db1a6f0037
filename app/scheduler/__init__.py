"""Schedules: Spring-dialect cron parsing and the timer that fires workflows on time."""
