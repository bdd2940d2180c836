if ($computer.AutomaticManagedPagefile) {
  Write-Output 'crashcart-validate: ok: system-managed page file'
} else {
  Write-Output 'crashcart-validate: FAIL: the page file is not system-managed'
  $failures++
}
