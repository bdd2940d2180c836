# The agent needs python3 and an AWS CLI with conditional writes (s3api put-object
# --if-none-match): a pinned awscli in its own venv (see agent/MANIFEST).
agent_packages=(python3 python3-venv)
agent_missing=()
for pkg in "${agent_packages[@]}"; do
  if ! dpkg-query -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    agent_missing+=("$pkg")
  fi
done
if [ "${#agent_missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  if [ "${crashcart_apt_lists_fresh:-0}" != 1 ]; then  # see kdump-tools-enable.sh
    apt-get update -q
  fi
  apt-get install -y -q --no-install-recommends "${agent_missing[@]}"
fi
@@FRAGMENT:agent-awscli-venv@@
