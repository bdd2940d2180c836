#!/usr/bin/env python3
"""The crashcart reference app: `make synth` runs it through the CDK CLI.

It composes the stacks of crashcart.stacks and runs the compliance packs on all of them, so
an unacknowledged cdk-nag finding fails the synth. Settings come from CDK context
(`cdk synth -c crashcart:region=eu-west-1 ...`); see README.md.
"""

from __future__ import annotations

import aws_cdk as cdk

from crashcart.compliance import add_compliance_checks
from crashcart.stacks import build_reference_app


def main() -> None:
    app = cdk.App()
    build_reference_app(app)
    add_compliance_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
