if ($computer.AutomaticManagedPagefile) {
  Set-CimInstance -InputObject $computer -Property @{ AutomaticManagedPagefile = $false }
}
$pageFile = Get-CimInstance -ClassName Win32_PageFileSetting -Filter "Name='C:\\pagefile.sys'"
if (-not $pageFile) {
  $pageFile = New-CimInstance -ClassName Win32_PageFileSetting -Property @{ Name = 'C:\pagefile.sys' }
}
Set-CimInstance -InputObject $pageFile -Property @{ InitialSize = [uint32]@@PAGE_FILE_MIB@@; MaximumSize = [uint32]@@PAGE_FILE_MIB@@ }
