# cmdline_crashkernel: print the running kernel's crashkernel= word (the last one, as the
# kernel reads it), or an empty line when /proc/cmdline has none.
cmdline_crashkernel() {
  local word found=''
  local -a cmdline_words
  read -r -a cmdline_words </proc/cmdline
  for word in "${cmdline_words[@]}"; do
    case "$word" in
      crashkernel=*) found=$word ;;
    esac
  done
  echo "$found"
}
