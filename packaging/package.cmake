# The Debian package `mailguard` (CPack DEB) and the install() rules of the files that are
# not built: units, sysusers/tmpfiles, D-Bus policy, polkit, settings, autostart, docs.
# Included from the top-level CMakeLists.txt. The package is made from an existing build:
#   cpack --config build/release/CPackConfig.cmake -B build/release
# (it compiles nothing that is not built already; install/setup.sh does the same).

# Paths the system's own services read, whatever the install prefix: guardd's default
# settings file is /etc/mailguard/guardd.conf, dbus-daemon reads policies from
# /usr/share/dbus-1/system.d, polkitd from /usr/share/polkit-1, systemd's sysusers and
# tmpfiles from /usr/lib.
install(FILES install/guardd.conf DESTINATION /etc/mailguard
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES install/org.mailguard.Guard1.conf DESTINATION /usr/share/dbus-1/system.d)
install(FILES install/org.mailguard.policy DESTINATION /usr/share/polkit-1/actions)
install(FILES install/50-mailguard.rules DESTINATION /usr/share/polkit-1/rules.d)
install(FILES install/sysusers.d/mailguard.conf DESTINATION /usr/lib/sysusers.d)
install(FILES install/tmpfiles.d/mailguard.conf DESTINATION /usr/lib/tmpfiles.d)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(CODE "set(mailguard_source_dir \"${CMAKE_SOURCE_DIR}\")
set(mailguard_units_dir \"${CMAKE_BINARY_DIR}/packaging/units\")")
install(SCRIPT packaging/install_units.cmake)

# `install` (and cpack's preinstall) do not build `all` first: a package is made from a
# build that is there (CI builds once, ~22 of its 30 minutes), and a missing binary fails
# the install loudly instead of compiling it again.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mailguard)
set(CPACK_PACKAGE_VENDOR "mailguard")
set(CPACK_PACKAGE_CONTACT "mailguard developers <mailguard@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "outbound mail guard and host firewall for home PCs")
# The extended description; cpack puts the summary above it and indents it for control.
set(CPACK_PACKAGE_DESCRIPTION
    "mailguard lets only the programs you approve open outbound mail
connections (ports 25, 465, 587, 2525): any other program's connection is
held until you approve or deny it, so malware on the PC cannot send spam in
your name. A zombie detector quarantines programs that behave like spam bots,
an audit checks the PC's own mail server for an open relay, and an optional
host firewall refuses inbound connections nobody allowed.

The package holds guardd (the service, nftables and NFQUEUE), guardctl (the
command line), guard-tui (the dashboard) and guard-notify (desktop
notifications with Approve and Deny).")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# CPack installs with DESTDIR set to its staging directory and the prefix /usr, so the
# absolute destinations above (/etc, /lib/systemd) land in the package too.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# The runtime libraries from the binaries (dpkg-shlibdeps), and the programs guardd and
# the maintainer scripts run: nft is not needed (libnftnl speaks netlink) but the nftables
# package is what Debian's firewall users know to look at; ip (the audit's veth pair and
# the namespace test of postinst); the system bus and polkitd for the policy calls.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nftables, iproute2, dbus, polkitd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/postinst
    ${CMAKE_SOURCE_DIR}/packaging/prerm
    ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian-only adjustments of the staged tree (compressed manual pages, the changelog,
# copyright, zsh's vendor directory): packaging/deb_staging.cmake.
set(CPACK_MAILGUARD_SOURCE_DIR ${CMAKE_SOURCE_DIR})
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_SOURCE_DIR}/packaging/deb_staging.cmake)
include(CPack)
