"""Node services: inbound pipeline, outbound queues, timers."""
