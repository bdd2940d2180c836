# The agent needs python3 and AWS CLI v2 >= 2.18 (conditional writes): AL2023's awscli-2
# package (brought up to date by the OS-update component).
if ! command -v aws >/dev/null 2>&1; then
  dnf -y install awscli-2
fi
