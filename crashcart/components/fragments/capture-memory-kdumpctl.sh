# kdump's own hooks: kdumpctl puts /etc/kdump/pre.d and post.d into the capture initramfs;
# the script takes its mode from its folder.
for hook_dir in /etc/kdump/pre.d /etc/kdump/post.d; do
  install -d -m 0755 "$hook_dir"
  install -m 0755 /usr/local/libexec/crashcart/capture-memory "$hook_dir/50-crashcart-capture-memory"
done
