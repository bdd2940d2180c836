if [ ! -x /opt/crashcart/awscli/bin/aws ]; then
  python3 -m venv /opt/crashcart/awscli
  /opt/crashcart/awscli/bin/pip install --disable-pip-version-check -q 'awscli==@@AGENT_AWSCLI_VERSION@@'
fi
install -d -m 0755 /etc/default
touch /etc/default/crashcart-agent
if grep -q '^CRASHCART_AWS=' /etc/default/crashcart-agent; then
  sed -i -E 's|^CRASHCART_AWS=.*|CRASHCART_AWS=/opt/crashcart/awscli/bin/aws|' /etc/default/crashcart-agent
else
  echo 'CRASHCART_AWS=/opt/crashcart/awscli/bin/aws' >>/etc/default/crashcart-agent
fi
