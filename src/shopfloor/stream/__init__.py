"""MQTT streaming: a worker that scores live sensor readings, and a replay of recorded data as a simulated line."""
