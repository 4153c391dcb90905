# Sets INGOT_COMMIT: -DINGOT_GIT_COMMIT= when given, else the abbreviated
# commit of the source tree's HEAD when CMAKE_SOURCE_DIR is the top of a git
# work tree (a copy of the tree inside another repository is not), else
# "unknown".  Also makes CMake run again when HEAD or the branch it names
# moves, so a build after a commit names that commit.
set(INGOT_GIT_COMMIT "" CACHE STRING "commit to report in --version (default: from git)")
set(INGOT_COMMIT unknown)
find_package(Git QUIET)
if(INGOT_GIT_COMMIT)
  set(INGOT_COMMIT "${INGOT_GIT_COMMIT}")
elseif(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --show-toplevel --short=12 HEAD
                  WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}" RESULT_VARIABLE rv
                  OUTPUT_VARIABLE out ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rv EQUAL 0)
    string(REPLACE "\n" ";" out "${out}")
    list(GET out 0 top)
    list(GET out 1 commit)
    file(REAL_PATH "${top}" top)
    file(REAL_PATH "${CMAKE_SOURCE_DIR}" src)
    if(top STREQUAL src)
      set(INGOT_COMMIT "${commit}")
      execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --symbolic-full-name HEAD
                      WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}" OUTPUT_VARIABLE ref
                      ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
      set(watch HEAD packed-refs)
      if(ref MATCHES "^refs/")
        list(APPEND watch "${ref}")
      endif()
      foreach(name ${watch})
        execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --git-path "${name}"
                        WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}" OUTPUT_VARIABLE path
                        ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
        get_filename_component(path "${path}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")
        if(EXISTS "${path}")
          set_property(DIRECTORY "${CMAKE_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
                       "${path}")
        endif()
      endforeach()
    endif()
  endif()
endif()
