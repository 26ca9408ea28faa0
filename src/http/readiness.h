// Reads that know when a socket is drained, so the next read waits for readiness instead of
// first trying recv(2) and getting EAGAIN. Internal to stream.cc.
//
// Asio's reactor already has the mechanism: a reactor operation that returns
// `done_and_exhausted` clears the descriptor's "try a speculative read" flag, and the next
// epoll event for the descriptor sets it again. Asio's own receive operation reports
// exhaustion only at end of stream, so every read after a complete message costs one recv(2)
// that fails with EAGAIN — about one per request on each side of the proxy.
//
// A short read (fewer bytes than asked for) means the receive queue is empty, with two
// exceptions that a later read must still see: a FIN or a reset consumed together with the
// data (the next recv returns 0 or the error, but no new epoll event will come), and a read
// that stopped at TCP's urgent mark. nginx tells these apart with the event bits
// (EPOLLRDHUP); so does this operation: the descriptor is registered for EPOLLRDHUP, and a
// short read counts as exhaustion only when the events epoll last reported for the
// descriptor show neither EPOLLRDHUP, EPOLLERR, EPOLLHUP nor EPOLLPRI. Those states are sticky
// (level-triggered, and epoll reports the level on every event), so when the event for a FIN
// has been seen, the last events show it; when it has not been seen yet, it is still queued
// and will set the flag again.
//
// This reaches into Asio's epoll reactor (private members, read through the standard's
// explicit-instantiation access rule), so it is compiled only for the Boost version it was
// written against; elsewhere reads fall back to Asio's own operation.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_DISABLE_EPOLL)
#define MOAT_HTTP_READINESS 1

#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactive_socket_service.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <cerrno>
#include <type_traits>

namespace moat::http::readiness {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using Reactor = asio::detail::epoll_reactor;
using Descriptor = Reactor::descriptor_state;
using Socket = asio::basic_socket<asio::ip::tcp, asio::any_io_executor>;
using SocketImpl =
    asio::detail::io_object_impl<asio::detail::reactive_socket_service<asio::ip::tcp>,
                                 asio::any_io_executor>;

// Access to private members: explicit instantiations may name them ([temp.spec.general]/6),
// and the friend function defined here hands the member pointer out.
template <typename Tag, typename Tag::type M>
struct Expose {
  friend typename Tag::type Get(Tag) { return M; }
};
struct SocketImplTag {
  using type = SocketImpl Socket::*;
  friend type Get(SocketImplTag);
};
struct TrySpeculativeTag {
  using type = bool (Descriptor::*)[Reactor::max_ops];
  friend type Get(TrySpeculativeTag);
};
struct RegisteredEventsTag {
  using type = uint32_t Descriptor::*;
  friend type Get(RegisteredEventsTag);
};
struct EpollFdTag {
  using type = int Reactor::*;
  friend type Get(EpollFdTag);
};
struct TaskResultTag {
  using type = unsigned int asio::detail::scheduler_operation::*;
  friend type Get(TaskResultTag);
};
template struct Expose<SocketImplTag, &Socket::impl_>;
template struct Expose<TrySpeculativeTag, &Descriptor::try_speculative_>;
template struct Expose<RegisteredEventsTag, &Descriptor::registered_events_>;
template struct Expose<EpollFdTag, &Reactor::epoll_fd_>;
template struct Expose<TaskResultTag, &asio::detail::scheduler_operation::task_result_>;

inline asio::detail::reactive_socket_service<asio::ip::tcp>::implementation_type& Impl(Socket& s) {
  return (s.*Get(SocketImplTag())).get_implementation();
}

// The events epoll last reported for the descriptor (Asio keeps them in the descriptor's
// operation header until the next report). Descriptor derives privately from its operation
// base; a C-style cast may convert to an inaccessible base ([expr.cast]/4).
inline uint32_t LastEvents(Descriptor* d) {
  auto* op = (asio::detail::scheduler_operation*)d;  // NOLINT: see above
  return op->*Get(TaskResultTag());
}

// recv(2) calls that found nothing to read (EAGAIN), for tests and benchmarks.
inline std::atomic<uint64_t> g_empty_reads{0};

// Registers the socket's descriptor for EPOLLRDHUP too (one epoll_ctl per connection).
// Returns false (and changes nothing) when that fails; reads then never claim exhaustion.
inline bool WatchPeerClose(Socket& s, Reactor& reactor) {
  auto& impl = Impl(s);
  Descriptor* d = impl.reactor_data_;
  if (d == nullptr) return false;
  uint32_t& registered = d->*Get(RegisteredEventsTag());
  if (registered == 0) return false;  // not in epoll at all
  if (registered & EPOLLRDHUP) return true;
  epoll_event ev{};
  ev.events = registered | EPOLLRDHUP;
  ev.data.ptr = d;
  if (::epoll_ctl(reactor.*Get(EpollFdTag()), EPOLL_CTL_MOD, impl.socket_, &ev) != 0) return false;
  registered = ev.events;
  return true;
}

// The caller has just seen the receive queue empty (a MSG_PEEK probe failed with EAGAIN, so
// no data, FIN or error is pending): the next read waits for an event instead of trying.
inline void MarkDrained(Socket& s) {
  Descriptor* d = Impl(s).reactor_data_;
  if (d != nullptr && (d->*Get(RegisteredEventsTag())) != 0)
    (d->*Get(TrySpeculativeTag()))[Reactor::read_op] = false;
}

// The socket's last read drained it and epoll has reported nothing for it since: any data,
// FIN or error arriving makes the reactor mark it readable again (the edge-triggered event
// sets try_speculative_), so nothing had arrived when the reactor last looked.
inline bool Drained(Socket& s) {
  Descriptor* d = Impl(s).reactor_data_;
  return d != nullptr && (d->*Get(RegisteredEventsTag())) != 0 &&
         !(d->*Get(TrySpeculativeTag()))[Reactor::read_op];
}

class RecvOpBase : public asio::detail::reactor_op {
 public:
  RecvOpBase(int fd, Descriptor* d, bool may_exhaust, asio::mutable_buffer b, func_type complete)
      : reactor_op(error_code(), &RecvOpBase::DoPerform, complete),
        fd_(fd),
        descriptor_(d),
        may_exhaust_(may_exhaust),
        buffer_(b) {}

  static status DoPerform(reactor_op* base) {
    auto* o = static_cast<RecvOpBase*>(base);
    for (;;) {
      ssize_t n = ::recv(o->fd_, o->buffer_.data(), o->buffer_.size(), 0);
      if (n > 0) {
        o->bytes_transferred_ = static_cast<size_t>(n);
        constexpr uint32_t kNotDrained = EPOLLRDHUP | EPOLLERR | EPOLLHUP | EPOLLPRI;
        if (o->may_exhaust_ && static_cast<size_t>(n) < o->buffer_.size() &&
            (LastEvents(o->descriptor_) & kNotDrained) == 0)
          return done_and_exhausted;
        return done;
      }
      if (n == 0) {
        o->ec_ = asio::error::eof;
        return done_and_exhausted;  // as Asio's own operation does at end of stream
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        g_empty_reads.fetch_add(1, std::memory_order_relaxed);
        return not_done;
      }
      o->ec_ = error_code(errno, asio::error::get_system_category());
      return done;
    }
  }

 private:
  int fd_;
  Descriptor* descriptor_;
  bool may_exhaust_;
  asio::mutable_buffer buffer_;
};

// Completes with `finish(finish_arg, ec)` instead of ec (the stream's bookkeeping), unless
// the io_context is being destroyed.
template <typename Handler>
class RecvOp : public RecvOpBase {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(RecvOp);
  using Finish = error_code (*)(void*, error_code);

  RecvOp(int fd, Descriptor* d, bool may_exhaust, asio::mutable_buffer b, Finish finish,
         void* finish_arg, Handler& h, const asio::any_io_executor& ex)
      : RecvOpBase(fd, d, may_exhaust, b, &RecvOp::DoComplete),
        finish_(finish),
        finish_arg_(finish_arg),
        handler_(std::move(h)),
        work_(handler_, ex) {}

  static void DoComplete(void* owner, asio::detail::operation* base, const error_code&, size_t) {
    auto* o = static_cast<RecvOp*>(base);
    ptr p = {asio::detail::addressof(o->handler_), o, o};
    asio::detail::handler_work<Handler, asio::any_io_executor> w(std::move(o->work_));
    error_code ec = owner ? o->finish_(o->finish_arg_, o->ec_) : o->ec_;
    // The handler is moved out so that the operation's memory is freed before the upcall.
    asio::detail::binder2<Handler, error_code, size_t> handler(o->handler_, ec,
                                                               o->bytes_transferred_);
    p.h = asio::detail::addressof(handler.handler_);
    p.reset();
    if (owner) w.complete(handler, handler.handler_);
  }

 private:
  Finish finish_;
  void* finish_arg_;
  Handler handler_;
  asio::detail::handler_work<Handler, asio::any_io_executor> work_;
};

// Starts a RecvOp on `s` (connected, non-blocking, registered with `reactor`). False when the
// socket is not in that state; nothing is started then. `may_exhaust`: the descriptor
// watches EPOLLRDHUP.
template <typename Handler>
bool StartRecv(Handler& handler, asio::ip::tcp::socket& s, Reactor& reactor, bool may_exhaust,
               asio::mutable_buffer b, typename RecvOp<Handler>::Finish finish, void* finish_arg) {
  auto& impl = Impl(s);
  if (b.size() == 0 || impl.reactor_data_ == nullptr ||
      (impl.state_ & asio::detail::socket_ops::non_blocking) == 0)
    return false;
  bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
  typename RecvOp<Handler>::ptr p = {asio::detail::addressof(handler),
                                     RecvOp<Handler>::ptr::allocate(handler), nullptr};
  p.p = new (p.v) RecvOp<Handler>(impl.socket_, impl.reactor_data_, may_exhaust, b, finish,
                                  finish_arg, handler, s.get_executor());
  reactor.start_op(Reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation, true);
  p.v = p.p = nullptr;
  return true;
}

}  // namespace moat::http::readiness

#endif
