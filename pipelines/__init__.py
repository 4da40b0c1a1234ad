"""CareQI: healthcare quality indicators."""
