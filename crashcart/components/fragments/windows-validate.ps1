$ErrorActionPreference = 'Stop'
$failures = 0
$key = 'HKLM:\SYSTEM\CurrentControlSet\Control\CrashControl'
$expected = [ordered]@{ CrashDumpEnabled = @@CRASH_DUMP_ENABLED@@; AutoReboot = @@AUTO_REBOOT@@; Overwrite = 1; NMICrashDump = 1 }
foreach ($name in $expected.Keys) {
  $have = (Get-ItemProperty -Path $key -Name $name -ErrorAction SilentlyContinue).$name
  if ($have -eq $expected[$name]) {
    Write-Output "crashcart-validate: ok: $name = $have"
  } else {
    Write-Output "crashcart-validate: FAIL: $name = '$have', expected $($expected[$name])"
    $failures++
  }
}
$wantDump = [Environment]::ExpandEnvironmentVariables('@@DUMP_FILE@@')
$haveDump = (Get-ItemProperty -Path $key -Name DumpFile).DumpFile
if ($haveDump -eq $wantDump) {
  Write-Output "crashcart-validate: ok: DumpFile = $haveDump"
} else {
  Write-Output "crashcart-validate: FAIL: DumpFile = '$haveDump', expected $wantDump"
  $failures++
}
$computer = Get-CimInstance -ClassName Win32_ComputerSystem
@@FRAGMENT:windows-page-file-check@@
if ($env:PROCESSOR_ARCHITECTURE -eq '@@WINDOWS_ARCH@@') {
  Write-Output "crashcart-validate: ok: architecture $env:PROCESSOR_ARCHITECTURE"
} else {
  Write-Output "crashcart-validate: FAIL: architecture $env:PROCESSOR_ARCHITECTURE, expected @@WINDOWS_ARCH@@"
  $failures++
}
if ($failures -gt 0) {
  throw "crashcart-validate: $failures check(s) failed: crash dumps are NOT configured"
}
Write-Output 'crashcart-validate: crash dump configured'
