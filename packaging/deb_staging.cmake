# CPACK_PRE_BUILD_SCRIPTS of the DEB package: runs after cpack installed the project into
# its staging directory, before dpkg-deb packs it. What Debian (and lintian) expect of a
# package but a plain `cmake --install` should not do:
#  - manual pages compressed (gzip -9n: no name or time stamp, so builds are reproducible);
#  - /usr/share/doc/mailguard/copyright and changelog.Debian.gz;
#  - zsh's completion in vendor-completions, the directory of Debian's $fpath meant for
#    packages (man/CMakeLists.txt picks it only for a build configured with prefix /usr).
set(root "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
if(NOT IS_DIRECTORY "${root}/usr")
  message(FATAL_ERROR "deb_staging.cmake: no staged /usr in '${root}'")
endif()

find_program(GZIP gzip REQUIRED)
file(GLOB pages "${root}/usr/share/man/man*/*")
foreach(page IN LISTS pages)
  if(NOT page MATCHES "\\.gz$")
    execute_process(COMMAND ${GZIP} -9nf "${page}" COMMAND_ERROR_IS_FATAL ANY)
  endif()
endforeach()

set(doc "${root}/usr/share/doc/mailguard")
file(MAKE_DIRECTORY "${doc}")
file(COPY "${CPACK_MAILGUARD_SOURCE_DIR}/packaging/copyright" DESTINATION "${doc}")
file(READ "${CPACK_MAILGUARD_SOURCE_DIR}/packaging/changelog" changelog)
string(REPLACE "@VERSION@" "${CPACK_PACKAGE_VERSION}" changelog "${changelog}")
file(WRITE "${doc}/changelog.Debian" "${changelog}")
execute_process(COMMAND ${GZIP} -9nf "${doc}/changelog.Debian" COMMAND_ERROR_IS_FATAL ANY)

set(site "${root}/usr/share/zsh/site-functions")
set(vendor "${root}/usr/share/zsh/vendor-completions")
if(EXISTS "${site}/_guardctl")
  file(MAKE_DIRECTORY "${vendor}")
  file(RENAME "${site}/_guardctl" "${vendor}/_guardctl")
  file(REMOVE_RECURSE "${site}")
endif()
