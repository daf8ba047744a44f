# Runs at install time (install(SCRIPT), from packaging/package.cmake): the unit files and
# the autostart entry name the binaries by absolute path, and only now is the prefix known
# (cpack installs into /usr, `cmake --install` into the configured prefix).
# mailguard_source_dir and mailguard_units_dir come from install(CODE) just before.
set(bindir "${CMAKE_INSTALL_PREFIX}/bin")
set(sbindir "${CMAKE_INSTALL_PREFIX}/sbin")

function(mailguard_configure_unit name destination)
  file(READ "${mailguard_source_dir}/install/${name}" text)
  string(REPLACE "@SBINDIR@" "${sbindir}" text "${text}")
  string(REPLACE "@BINDIR@" "${bindir}" text "${text}")
  # guardd.service's Documentation= names the README where setup.sh once copied it.
  string(REPLACE "file:///usr/local/share/doc/mailguard/"
                 "file://${CMAKE_INSTALL_PREFIX}/share/doc/mailguard/" text "${text}")
  file(WRITE "${mailguard_units_dir}/${name}" "${text}")
  # file(INSTALL) adds $DESTDIR (cpack's staging directory) and records the file in
  # install_manifest.txt.
  file(INSTALL DESTINATION "${destination}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${mailguard_units_dir}/${name}")
endfunction()

# Debian 12's systemd looks for packaged system units in /lib/systemd/system.
mailguard_configure_unit(guardd.service /lib/systemd/system)
mailguard_configure_unit(mailguard-mta-agent.service /lib/systemd/system)
mailguard_configure_unit(guard-notify.service /usr/lib/systemd/user)
mailguard_configure_unit(guard-notify.desktop /etc/xdg/autostart)
