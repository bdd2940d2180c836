if (-not $computer.AutomaticManagedPagefile) {
  Set-CimInstance -InputObject $computer -Property @{ AutomaticManagedPagefile = $true }
}
