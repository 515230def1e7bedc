"""The crypto-unit side: master key, units, region, stores. Knows nothing of PKCS#11 sessions."""
