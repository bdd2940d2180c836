"""In-account verification (``make integ``): CDK integ tests, never run by ``make test`` or CI."""
