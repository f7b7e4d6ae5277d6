"""Sensor monitoring: normal behaviour learnt from sensor histories, anomalies flagged and explained per sensor."""
