$pageFile = Get-CimInstance -ClassName Win32_PageFileSetting -Filter "Name='C:\\pagefile.sys'"
if ($pageFile -and $pageFile.InitialSize -eq @@PAGE_FILE_MIB@@) {
  Write-Output "crashcart-validate: ok: page file C:\pagefile.sys $($pageFile.InitialSize) MiB"
} else {
  Write-Output 'crashcart-validate: FAIL: page file C:\pagefile.sys is not @@PAGE_FILE_MIB@@ MiB'
  $failures++
}
