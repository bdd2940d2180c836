#!/usr/bin/env bash
# make integ: deploy the integ test (tests/integ/integ_canary_drill.py) to YOUR sandbox account
# with YOUR credentials, let its assertion stack build an AMI and drill it, then destroy both
# stacks, whatever happened. Never run by `make test` or CI (it refuses when CI is set).
#   CRASHCART_INTEG_REGION  the region (default: the credentials' region)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -n "${CI:-}" ]; then
  echo "make integ deploys to a real account: not in CI" >&2
  exit 2
fi
if ! .venv/bin/python -c 'import boto3,sys; boto3.client("sts").get_caller_identity()' 2>/dev/null; then
  echo "make integ needs AWS credentials for a sandbox account (AWS_PROFILE or the AWS_* variables)" >&2
  exit 2
fi
if [ -n "${CRASHCART_INTEG_REGION:-}" ]; then
  export AWS_REGION="$CRASHCART_INTEG_REGION" AWS_DEFAULT_REGION="$CRASHCART_INTEG_REGION"
fi
cdk=("$root/node_modules/.bin/cdk" --no-notices --app ".venv/bin/python -m tests.integ.integ_canary_drill"
     --output cdk.out.integ)
cleanup() {
  "${cdk[@]}" destroy --all --force || echo "destroy failed: delete the stacks by hand" >&2
}
trap cleanup EXIT
# The assertion stack deploys after the stack under test; a failed check fails its deploy.
"${cdk[@]}" deploy --all --require-approval never
echo "integ: every check passed"
