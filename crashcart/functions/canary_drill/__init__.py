"""The canary crash drill's steps: launch a canary, wait until it is armed, hang it, wait for
its dump, conclude (promote or not), and clean up after stopped executions."""
