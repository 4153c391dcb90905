# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt): writes the
# files that name installed paths (the man pages, the systemd unit, the
# sysusers.d entry) for the prefix given at install time, so that
# `cmake --install BUILD --prefix DIR` gets a unit whose ExecStart is
# DIR/sbin/ingotd.  Set before it runs (install(CODE)): INGOT_SOURCE_DIR,
# INGOT_BINARY_DIR, INGOT_VERSION and the INGOT_*DIR values of
# GNUInstallDirs as configured (relative to the prefix, or absolute).  The
# data directory is /var/lib/ingot whatever the prefix: systemd's
# StateDirectory= is always under /var/lib.

# A GNUInstallDirs value made absolute against the install-time prefix.
# sysconfdir under the prefix / or /usr is /etc, as GNUInstallDirs has it.
function(ingot_full out dir kind)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  elseif(kind STREQUAL "root" AND CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?)?$")
    set(${out} "/${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

ingot_full(SBINDIR "${INGOT_SBINDIR}" prefix)
ingot_full(SYSCONFDIR "${INGOT_SYSCONFDIR}" root)
ingot_full(DOCDIR "${INGOT_DOCDIR}" prefix)
ingot_full(MANDIR "${INGOT_MANDIR}" prefix)
ingot_full(UNITDIR "${INGOT_SYSTEMD_UNITDIR}" prefix)
ingot_full(SYSUSERSDIR "${INGOT_SYSUSERSDIR}" prefix)
set(PROJECT_VERSION "${INGOT_VERSION}")

set(gen "${INGOT_BINARY_DIR}/install-configured")
foreach(pair "docs/man/ingotd.8.in;${MANDIR}/man8"
             "docs/man/ingotctl.1.in;${MANDIR}/man1"
             "cluster-configs/systemd/ingotd.service.in;${UNITDIR}"
             "cluster-configs/systemd/ingot.sysusers;${SYSUSERSDIR}")
  list(GET pair 0 src)
  list(GET pair 1 dest)
  get_filename_component(name "${src}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  if(name STREQUAL "ingot.sysusers")
    set(name ingot.conf)
  endif()
  configure_file("${INGOT_SOURCE_DIR}/${src}" "${gen}/${name}" @ONLY)
  file(INSTALL DESTINATION "${dest}" TYPE FILE FILES "${gen}/${name}")
endforeach()
