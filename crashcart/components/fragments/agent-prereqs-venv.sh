# The agent needs python3 and an AWS CLI with conditional writes (s3api put-object
# --if-none-match): a pinned awscli in its own venv (see agent/MANIFEST).
if ! command -v python3 >/dev/null 2>&1; then
  dnf -y install python3
fi
@@FRAGMENT:agent-awscli-venv@@
